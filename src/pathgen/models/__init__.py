"""pathgen.models."""
