from doorstep.cli import app

app(prog_name="doorstep")
