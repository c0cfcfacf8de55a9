using System.Text.Json.Nodes;

namespace MMedExpert.Serving.Server;

/// <summary>
/// A request the server refuses, answered with OpenAI's error object
/// <c>{"error":{"message","type","param","code"}}</c> and an HTTP status: 400 malformed input, 404 unknown model or
/// adapter, 422 well-formed but unprocessable (limits, ranges), 413 a body over the limit.
/// </summary>
public sealed class ApiError : Exception
{
    public int Status { get; }
    public string Type { get; }
    public string? Param { get; }
    public string? Code { get; }

    public ApiError(int status, string message, string? param = null, string? code = null, string? type = null) : base(message)
    {
        Status = status;
        Param = param;
        Code = code;
        Type = type ?? status switch
        {
            404 => "NotFoundError",
            422 => "UnprocessableEntityError",
            413 => "RequestTooLargeError",
            >= 500 => "InternalServerError",
            _ => "BadRequestError",
        };
    }

    public static ApiError BadRequest(string message, string? param = null) => new(400, message, param, "invalid_request_error");
    public static ApiError Unprocessable(string message, string? param = null) => new(422, message, param, "invalid_value");
    public static ApiError ModelNotFound(string name, string param = "model") =>
        new(404, $"The model `{name}` does not exist.", param, "model_not_found");

    public JsonObject ToJson() => new()
    {
        ["error"] = new JsonObject
        {
            ["message"] = Message,
            ["type"] = Type,
            ["param"] = Param,
            ["code"] = Code is null ? null : JsonValue.Create(Code),
        },
    };
}
