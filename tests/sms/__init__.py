"""SMS test helpers: Kannel's fake SMSC client (fakesmsc) driven from Python."""
