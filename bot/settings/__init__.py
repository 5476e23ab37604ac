"""Settings: the config file, playbook loading, the staff directory, one YAML reader."""
