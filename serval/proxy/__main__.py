from serval.proxy.main import main

main()
