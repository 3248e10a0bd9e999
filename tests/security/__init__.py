"""Security regression tests: untrusted models, states and scripts must fail safely."""
