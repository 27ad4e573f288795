"""pathgen."""
