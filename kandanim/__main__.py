from kandanim.cli import main

main()
