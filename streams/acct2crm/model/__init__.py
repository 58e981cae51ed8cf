"""Types every layer shares: CRM records, Kafka messages, table keys.

Pure data, no I/O: the rules, the sink, the app and the operator commands
all import from here, so none of them has to import another for a type.
"""
