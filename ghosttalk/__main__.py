from ghosttalk.cli import main

raise SystemExit(main())
