from radialog.cli import main

raise SystemExit(main())
