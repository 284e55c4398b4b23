from crmrisk.cli import main

main()
