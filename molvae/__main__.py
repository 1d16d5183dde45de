"""``python -m molvae ...`` (and ``torchrun --nproc_per_node N -m molvae train ...``)."""

from molvae.cli.main import main

raise SystemExit(main())
