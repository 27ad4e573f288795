"""`python -m pathgen.cli ...`: the same CLI as the `pathgen` script, for when no script is on PATH."""

from pathgen.cli import main

main()
