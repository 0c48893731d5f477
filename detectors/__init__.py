"""Pure detection logic: plain data in, plain results out. No Kafka, no web code here."""
