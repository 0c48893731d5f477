"""HTTP ingest for partners: batches of rows in, Kafka records out.

    POST /ingest/meter-readings     (the power utility)   JSON or CSV
    POST /ingest/fence-pings        (mobile carriers)     JSON or CSV, clear device ids
    POST /ingest/fence-pings/camara (mobile carriers)     CAMARA geofencing CloudEvents
    Authorization: Bearer <token of the source>

Carrier device ids are replaced by their keyed-hash pseudonym (streams.edge.pseudonyms) as soon
as a row is read; the clear id exists only in the request. A refused carrier row is
dead-lettered with its reason but without its bytes, since they hold the clear id.

Each row is validated on its own against the contract (streams.contract). The answer
counts accepted and rejected rows and gives the reason of every rejected row; good rows
are produced to their topic and bad rows to ``dead-letters`` (each with its original
bytes) before the answer is sent, so "accepted" means acknowledged by Kafka. The source
id comes from the token, never from the body.

Rows are produced as batch messages (MeterReadingBatch, FencePingBatch), each holding
only keys of one partition (the partition their meter id or device pseudonym hashes to),
so per-key state stays on its partition and the agents pay their per-message cost once
per batch. Re-sending a batch is harmless: the power agent keeps the interval times it
has seen per meter and ignores a reading it already counted.

Its parts: ``feeds`` (what each endpoint accepts), ``parsing`` (JSON and CSV bodies,
times), ``camara`` (CAMARA geofencing notifications), ``service`` (tokens, validation,
producing, the routes) and ``openapi`` (the published contract of the API).
"""
