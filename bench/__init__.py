"""sigwarden's benchmark: `make bench` (python -m bench), `make bench-micro`, `make bench-profile`.

Not part of the installed package: it drives real processes (nginx, wrk, mitmdump, `sigwarden run`)
on loopback and measures them. See BENCHMARKS.md.
"""
