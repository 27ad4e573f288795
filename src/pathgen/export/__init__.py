"""pathgen.export."""
