from serval.replica.main import main

main()
