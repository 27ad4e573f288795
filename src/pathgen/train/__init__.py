"""pathgen.train."""
