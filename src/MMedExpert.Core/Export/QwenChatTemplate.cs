namespace MMedExpert.Core.Export;

/// <summary>
/// The Jinja chat template of Qwen2.5-VL, written into an export's tokenizer_config.json ("chat_template") and
/// chat_template.json (what transformers' AutoProcessor and vLLM's chat endpoint render). Facts from the template the
/// published Qwen2.5-VL-*-Instruct checkpoints ship (chat_template.json on the Hub; the same text is used verbatim by many
/// public projects): a default system turn when the first message is not a system one; every message as
/// "&lt;|im_start|&gt;{role}\n" + content + "&lt;|im_end|&gt;\n"; string content as is, list content part by part with
/// nothing between parts, an image as &lt;|vision_start|&gt;&lt;|image_pad|&gt;&lt;|vision_end|&gt; (a video with
/// &lt;|video_pad|&gt;), optionally numbered with add_vision_id; add_generation_prompt appends "&lt;|im_start|&gt;assistant\n".
/// This is the text <see cref="Tokenization.Qwen25VLChat"/> renders (its default system prompt, before the processor
/// expands each &lt;|image_pad|&gt; to the image's token count); ExportTests renders this string with a Jinja subset and
/// checks the two agree.
/// </summary>
public static class QwenChatTemplate
{
    /// <summary>The template, one string as the Hub files hold it ("\n" are real newlines).</summary>
    public static readonly string Jinja = string.Concat(
        "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}",
        "{% for message in messages %}",
        "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}",
        "<|im_start|>{{ message['role'] }}\n",
        "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n",
        "{% else %}",
        "{% for content in message['content'] %}",
        "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}",
        "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}",
        "<|vision_start|><|image_pad|><|vision_end|>",
        "{% elif content['type'] == 'video' or 'video' in content %}",
        "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}",
        "<|vision_start|><|video_pad|><|vision_end|>",
        "{% elif 'text' in content %}{{ content['text'] }}",
        "{% endif %}",
        "{% endfor %}<|im_end|>\n",
        "{% endif %}",
        "{% endfor %}",
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}");
}
