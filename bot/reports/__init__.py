"""Figures, the evening digest and weekly report, the case export."""
