"""The SLA clock: working-time calendars, the pure engine, timers as data, and the service
that fires them."""
