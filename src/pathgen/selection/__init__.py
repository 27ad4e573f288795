"""pathgen.selection."""
