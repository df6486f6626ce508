"""`make rehearse`: the rendered plan applied to a throwaway Debian 12 VPS with a real Docker
engine, in namespaces of its own (see README, "Rehearsal")."""
