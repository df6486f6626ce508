"""`make rehearse`: the rendered plan applied to a throwaway Debian VPS (12 or 13, as the stack's
vpsDebianVersion says) with a real Docker engine, in namespaces of its own (see
docs/rehearsal.md)."""
