"""Writes the few-shot demo's data: 20 intents x 15 sentences, and new classes to predict.

  python demo_data.py --output_dir=demo_data

All sentences are generated here from templates written for this project (no dataset is copied):
  intents.tsv   text<TAB>intent, 300 lines (meta-training and held-out evaluation classes)
  support.tsv   2 examples for each of 5 classes that are not among the 20 intents
  predict.txt   sentences to classify into those 5 new classes
"""
import argparse
import os

# intent: (templates with one {} slot, fillers). Each template takes each of three fillers: 5 x 3 = 15.
INTENTS = {
    "set_alarm": (["wake me up at {}", "set an alarm for {}", "I need an alarm at {}",
                   "can you ring me at {} tomorrow", "put an alarm on for {}"], ["6 am", "seven thirty", "noon"]),
    "set_timer": (["start a timer for {}", "count down {} please", "set a {} timer",
                   "let me know when {} have passed", "time {} for the pasta"], ["ten minutes", "an hour", "90 seconds"]),
    "calendar_event": (["add {} to my calendar", "schedule {} for friday", "put {} in my diary",
                        "book {} next week", "create an event called {}"], ["dentist visit", "team lunch", "yoga class"]),
    "send_message": (["text {} that I am running late", "send {} a message", "write to {} on whatsapp",
                      "message {} saying thanks", "tell {} I will call back"], ["mom", "my boss", "alex"]),
    "make_call": (["call {}", "phone {} right now", "dial {} for me",
                   "ring {} on speaker", "start a video call with {}"], ["grandma", "the office", "sam"]),
    "smart_lights": (["turn off the lights in the {}", "dim the {} lights", "make the {} brighter",
                      "switch the {} lamp on", "set the {} lights to blue"], ["kitchen", "bedroom", "hallway"]),
    "thermostat": (["set the heating to {}", "make it {} in here", "change the thermostat to {}",
                    "I want the house at {}", "keep the temperature at {}"], ["21 degrees", "a bit warmer", "68 fahrenheit"]),
    "shopping_list": (["add {} to my shopping list", "put {} on the grocery list", "we are out of {}",
                       "remind me to buy {}", "remove {} from the list"], ["milk", "eggs", "olive oil"]),
    "order_food": (["order {} for delivery", "get me some {} delivered", "I would like to order {}",
                    "find a place that delivers {}", "can I get {} to my door"], ["pizza", "sushi", "thai curry"]),
    "book_taxi": (["get me a taxi to {}", "book a ride to {}", "I need a cab to {}",
                   "call an uber to {}", "how much is a taxi to {}"], ["the station", "the airport", "downtown"]),
    "news": (["what is the latest {} news", "read me the {} headlines", "any {} news today",
              "give me a {} news update", "what happened in {} today"], ["world", "tech", "business"]),
    "sports_scores": (["what was the {} score", "who won the {} game", "did {} win last night",
                       "show me the {} results", "how is {} doing this season"], ["lakers", "arsenal", "yankees"]),
    "translate": (["how do you say {} in french", "translate {} into german", "what is {} in japanese",
                   "say {} in spanish", "give me the italian for {}"], ["good morning", "thank you", "where is the bank"]),
    "define_word": (["what does {} mean", "define {}", "give me the definition of {}",
                     "look up the word {}", "what is the meaning of {}"], ["ephemeral", "ubiquitous", "serendipity"]),
    "play_podcast": (["play the latest episode of {}", "resume {}", "put on {} podcast",
                      "start the podcast {}", "next episode of {} please"], ["the daily", "science hour", "history talks"]),
    "reminder": (["remind me to {} tonight", "don't let me forget to {}", "set a reminder to {}",
                  "I have to {} later, remind me", "make a note to {} tomorrow"], ["water the plants", "pay rent", "take my pills"]),
    "fitness_tracking": (["how many {} today", "log {} for me", "track my {}",
                          "show my {} for this week", "what is my {} goal"], ["steps", "calories burned", "running distance"]),
    "movie_showtimes": (["when is {} playing", "showtimes for {} tonight", "find a cinema showing {}",
                         "is {} on this weekend", "two tickets for {}"], ["the new batman", "dune", "a pixar film"]),
    "package_tracking": (["where is my {}", "track the {} I ordered", "when will my {} arrive",
                          "has my {} shipped yet", "status of the {} delivery"], ["parcel", "new phone", "book order"]),
    "tell_joke": (["tell me a {} joke", "say something {}", "I want to hear a {} joke",
                   "make me laugh with something {}", "do you know any {} jokes"], ["funny", "silly", "dad"]),
}

# Five classes the model never trains on, with two examples each, and sentences to classify.
SUPPORT = {
    "weather": ["Will it rain in Lisbon tomorrow?", "How cold is it going to get tonight?"],
    "music": ["Put on some relaxing jazz.", "Skip to the next song on this album."],
    "cooking": ["How long should I boil an egg?", "What can I use instead of butter when baking?"],
    "banking": ["Move fifty dollars into my savings account.", "Why was my card declined at the store?"],
    "travel": ["Find me a cheap flight to Tokyo in March.", "Do I need a visa to visit Canada?"],
}
PREDICT = [
    "Is there snow in the forecast for the weekend?",
    "Play the latest album by my favourite band.",
    "How many minutes does rice need to simmer?",
    "What is the balance of my checking account?",
    "Which hotels near the airport have rooms tonight?",
    "Turn the volume up on this track.",
    "Should I bring an umbrella to work today?",
    "I want to send money to my sister's account.",
]


def intent_lines():
    lines = []
    for intent, (templates, fillers) in INTENTS.items():
        for template in templates:
            for filler in fillers:
                lines.append(f"{template.format(filler)}\t{intent}")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_dir", default="demo_data")
    args = parser.parse_args()
    os.makedirs(args.output_dir, exist_ok=True)
    outputs = {"intents.tsv": intent_lines(),
               "support.tsv": [f"{text}\t{label}" for label, texts in SUPPORT.items() for text in texts],
               "predict.txt": PREDICT}
    for name, lines in outputs.items():
        with open(os.path.join(args.output_dir, name), "w", encoding="utf-8") as writer:
            writer.write("\n".join(lines) + "\n")
    print(f"wrote {', '.join(outputs)} in {args.output_dir} ({len(INTENTS)} intents, {len(outputs['intents.tsv'])} sentences)")


if __name__ == "__main__":
    main()
