"""pathgen.engine."""
