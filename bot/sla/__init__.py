"""The SLA clock: working-time calendars, the pure engine, timers, the acting service, duty."""
