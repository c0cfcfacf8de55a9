using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using MMedExpert.Core;

namespace MMedExpert.Serving.Server;

/// <summary>
/// `mmx serve`: an OpenAI-compatible HTTP server (Kestrel, minimal APIs) over one checkpoint and its LoRA adapters, with
/// continuous batching (<see cref="BatchEngine"/>). <see cref="StartAsync"/> loads the model and adapters, starts the
/// engine thread and listens; <see cref="StopAsync"/> stops listening, then the engine, then frees the model.
/// </summary>
public sealed class OpenAiServer : IAsyncDisposable
{
    readonly WebApplication app;
    readonly BatchEngine engine;
    readonly ServedModel served;
    int stopped;

    public Uri BaseAddress { get; }
    public ServeOptions Options { get; }
    public BatchEngine Engine => engine;

    OpenAiServer(WebApplication app, BatchEngine engine, ServedModel served, ServeOptions options, Uri baseAddress)
    {
        this.app = app;
        this.engine = engine;
        this.served = served;
        Options = options;
        BaseAddress = baseAddress;
    }

    public static async Task<OpenAiServer> StartAsync(ServeOptions options, CancellationToken cancel = default)
    {
        options.Validate();
        var served = await Task.Run(() => ServedModel.Load(options.ModelDir, options.DType), cancel);
        BatchEngine? engine = null;
        WebApplication? app = null;
        try
        {
            var adapters = new AdapterRegistry();
            foreach (var (name, dir) in options.Adapters)
            {
                string internalName = adapters.NewInternalName();
                try { served.Lora.Load(dir, internalName); }
                catch (MmxException e) { throw new ServeException($"--adapter {name}={dir}: {e.Message}", e); }
                catch (IOException e) { throw new ServeException($"--adapter {name}={dir}: {e.Message}", e); }
                adapters.Add(name, internalName, Path.GetFullPath(dir));
            }
            engine = new BatchEngine(served, options.MaxBatch, options.MaxModelLen);

            var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
            builder.Logging.ClearProviders();
            builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(5));
            builder.WebHost.ConfigureKestrel(k =>
            {
                k.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
                if (options.Host == "localhost") k.ListenLocalhost(options.Port);
                else if (IPAddress.TryParse(options.Host, out var ip)) k.Listen(ip, options.Port);
                else throw new ServeException($"--host: '{options.Host}' is not an IP address or localhost");
            });
            app = builder.Build();
            new OpenAiEndpoints(options, served, engine, adapters).Map(app);
            try { await app.StartAsync(cancel); }
            catch (IOException e) { throw new ServeException($"cannot listen on {options.Host}:{options.Port}: {e.Message}", e); }

            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            int port = new Uri(address).Port;
            string host = options.Host is "0.0.0.0" or "::" or "localhost" ? "127.0.0.1" : options.Host;
            if (host.Contains(':')) host = $"[{host}]";
            return new OpenAiServer(app, engine, served, options, new Uri($"http://{host}:{port}/"));
        }
        catch
        {
            if (app is not null) await app.DisposeAsync();
            engine?.Dispose();
            served.Dispose();
            throw;
        }
    }

    /// <summary>Waits until the host is asked to stop (Ctrl+C, SIGTERM) or <paramref name="cancel"/> fires.</summary>
    public Task WaitForShutdownAsync(CancellationToken cancel = default) => app.WaitForShutdownAsync(cancel);

    public async Task StopAsync()
    {
        if (Interlocked.Exchange(ref stopped, 1) == 1) return;
        try { await app.StopAsync(); }
        finally
        {
            engine.Dispose();
            served.Dispose();
            await app.DisposeAsync();
        }
    }

    public ValueTask DisposeAsync() => new(StopAsync());
}
