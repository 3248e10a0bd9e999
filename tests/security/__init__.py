"""Security tests: untrusted models and states must not run code or write outside their folder."""
