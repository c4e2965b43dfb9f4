"""`python -m qvae_core ...`, the same as the `qvae-core` command (and what torchrun launches:
`torchrun --nproc_per_node=N -m qvae_core train ...`)."""

from .cli import main

raise SystemExit(main())
