"""Security regression tests: untrusted scripts, models and values must fail safely."""
