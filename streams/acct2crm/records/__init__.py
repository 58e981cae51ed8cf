"""What acct2crm itself writes to Kafka: Avro records and their codec."""
