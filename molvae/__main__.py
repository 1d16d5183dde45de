"""``python -m molvae ...`` (and ``torchrun --nproc_per_node N -m molvae train ...``)."""

from .cli import main

raise SystemExit(main())
