"""Where partners' data enters: the HTTP ingest for utilities and carriers, the camera
gateway, and the pseudonymization of carrier device ids (clear ids stop here)."""
