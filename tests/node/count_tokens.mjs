// The size in tokens of the text on stdin, with OpenAI's o200k_base vocabulary (the
// gpt-tokenizer package ships it: nothing is downloaded). Used by `python -m bench mcp`.
import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';

let input = '';
for await (const chunk of process.stdin) input += chunk;
console.log(JSON.stringify({ tokens: countTokens(input), chars: input.length }));
