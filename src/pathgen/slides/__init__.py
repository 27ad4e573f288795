"""pathgen.slides."""
