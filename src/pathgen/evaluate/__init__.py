"""pathgen.evaluate."""
