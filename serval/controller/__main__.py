from serval.controller.main import main

main()
