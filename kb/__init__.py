"""Knowledge base (service guides, FAQ, the reply library) and the search port with its two
adapters: SQLite FTS5 (embedded) and Elasticsearch."""
