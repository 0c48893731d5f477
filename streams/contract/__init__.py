"""The contract: what crosses Kafka. Topic names, record schemas (versioned), strict
decoding with reasons in words, the published JSON Schemas, and which partition a key
belongs to. Every producer and consumer goes through it; it imports nothing else of
ShaftWatch."""
