using Replicator.Node.Cli;

return await CommandLine.InvokeAsync(args);
