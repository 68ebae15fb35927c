// The official JavaScript Speech SDK against a gateway: a push stream fed from a WAV file,
// continuous recognition until the stream ends. Prints one JSON line per event.
// usage: node sdk_client.js translate|recognize|translate-auto ENDPOINT_URL WAV_PATH
// translate-auto: ENDPOINT_URL is a host (fromHost), the language identified among en-US and es-ES, into en.
// The WAV file's own 44-byte header says the push stream's format (PCM, or µ-law/A-law: tags 7/6).
"use strict";
const fs = require("fs");
const sdk = require("microsoft-cognitiveservices-speech-sdk");

const [kind, endpoint, wavPath] = process.argv.slice(2);
const print = (event) => console.log(JSON.stringify(event));

const wav = fs.readFileSync(wavPath);
const pcm = wav.subarray(44);  // a 44-byte header, as tests/support/wavfiles.py writes
const [tag, channels, rate, bits] = [wav.readUInt16LE(20), wav.readUInt16LE(22), wav.readUInt32LE(24), wav.readUInt16LE(34)];
const format = tag === 1 ? sdk.AudioStreamFormat.getWaveFormatPCM(rate, bits, channels)
  : sdk.AudioStreamFormat.getWaveFormat(rate, bits, channels, tag === 7 ? sdk.AudioFormatTag.MuLaw : sdk.AudioFormatTag.ALaw);
const stream = sdk.AudioInputStream.createPushStream(format);
for (let i = 0; i < pcm.length; i += 3200) {
  stream.write(pcm.subarray(i, i + 3200).buffer.slice(pcm.byteOffset + i, pcm.byteOffset + Math.min(i + 3200, pcm.length)));
}
stream.close();
const audio = sdk.AudioConfig.fromStreamInput(stream);

let recognizer;
if (kind === "translate-auto") {
  const config = sdk.SpeechTranslationConfig.fromHost(new URL(endpoint));
  config.addTargetLanguage("en");
  config.setProperty(sdk.PropertyId.SpeechServiceConnection_LanguageIdMode, "Continuous");
  const languages = sdk.AutoDetectSourceLanguageConfig.fromLanguages(["en-US", "es-ES"]);
  recognizer = sdk.TranslationRecognizer.FromConfig(config, languages, audio);
  recognizer.recognized = (_, e) => print({event: "recognized", reason: sdk.ResultReason[e.result.reason],
    text: e.result.text, en: e.result.translations ? e.result.translations.get("en") : null,
    language: sdk.AutoDetectSourceLanguageResult.fromResult(e.result).language});
} else if (kind === "translate") {
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
