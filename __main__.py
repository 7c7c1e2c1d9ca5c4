"""Entry point of `pulumi up`; the program itself is mesh/program.py."""

from mesh.program import main

main()
