// `mmx`: the command-line entry point; the commands are listed in MmxApp.
return MMedExpert.Cli.MmxApp.Run(args);
