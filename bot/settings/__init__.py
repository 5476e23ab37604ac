"""Settings: config.py (with connections.py), the playbook (playbook.py and one module per
file: routing_rules, sla_rules, reply_templates, escalation_rules, crisis_rules), the duty
rota (duty_rules.py), and the toolkit they share: errors.py, yamlfile.py, fields.py."""
