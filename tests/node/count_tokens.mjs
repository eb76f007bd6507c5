// Token counts with OpenAI's o200k_base vocabulary (the gpt-tokenizer package ships it:
// nothing is downloaded). stdin: a JSON array of texts; stdout: a JSON array of their counts.
// Used by `python -m bench mcp` (the size of `pm mcp`'s tool list).
import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';

let input = '';
for await (const chunk of process.stdin) input += chunk;
console.log(JSON.stringify(JSON.parse(input).map((text) => countTokens(text))));
