from medcls.cli import command

command()
