"""pathgen.agents."""
