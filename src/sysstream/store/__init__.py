"""The history store: samples kept across restarts in an embedded SQLite file, in tiers."""
