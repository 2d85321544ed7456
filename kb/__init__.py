"""Knowledge base: service guides, FAQ, past replies, search backends (later issue)."""
