// The official JavaScript Speech SDK against a gateway: a push stream fed from a WAV file,
// continuous recognition until the stream ends. Prints one JSON line per event.
// usage: node sdk_client.js translate|recognize ENDPOINT_URL WAV_PATH
"use strict";
const fs = require("fs");
const sdk = require("microsoft-cognitiveservices-speech-sdk");

const [kind, endpoint, wavPath] = process.argv.slice(2);
const print = (event) => console.log(JSON.stringify(event));

const wav = fs.readFileSync(wavPath);
const pcm = wav.subarray(44);  // a 44-byte PCM header, as tests/gateway/conftest.py writes
const stream = sdk.AudioInputStream.createPushStream(sdk.AudioStreamFormat.getWaveFormatPCM(16000, 16, 1));
for (let i = 0; i < pcm.length; i += 3200) {
  stream.write(pcm.subarray(i, i + 3200).buffer.slice(pcm.byteOffset + i, pcm.byteOffset + Math.min(i + 3200, pcm.length)));
}
stream.close();
const audio = sdk.AudioConfig.fromStreamInput(stream);

let recognizer;
if (kind === "translate") {
  const config = sdk.SpeechTranslationConfig.fromEndpoint(new URL(endpoint));
  config.speechRecognitionLanguage = "en-US";
  config.addTargetLanguage("es");
  recognizer = new sdk.TranslationRecognizer(config, audio);
  recognizer.recognized = (_, e) => print({event: "recognized", reason: sdk.ResultReason[e.result.reason],
    text: e.result.text, es: e.result.translations ? e.result.translations.get("es") : null});
} else {
  const config = sdk.SpeechConfig.fromEndpoint(new URL(endpoint));
  config.speechRecognitionLanguage = "en-US";
  recognizer = new sdk.SpeechRecognizer(config, audio);
  recognizer.recognized = (_, e) => print({event: "recognized", reason: sdk.ResultReason[e.result.reason],
    text: e.result.text});
}
recognizer.recognizing = (_, e) => print({event: "recognizing", text: e.result.text});
recognizer.canceled = (_, e) => print({event: "canceled", reason: sdk.CancellationReason[e.reason],
  details: e.errorDetails || ""});
recognizer.sessionStopped = () => {
  print({event: "stopped"});
  recognizer.stopContinuousRecognitionAsync(() => { recognizer.close(); process.exit(0); });
};
recognizer.startContinuousRecognitionAsync(() => {}, (err) => { print({event: "error", details: String(err)}); process.exit(1); });
setTimeout(() => { print({event: "timeout"}); process.exit(2); }, 240000);
