from deepclust_cli.cli import main

main()
