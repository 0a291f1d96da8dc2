from streamdenoise.cli import main

raise SystemExit(main())
