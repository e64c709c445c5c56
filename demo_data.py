"""Writes the few-shot demo's data: 20 intents x 15 sentences, and new classes to predict.

  python demo_data.py --output_dir=demo_data [--language=zh]

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


# The Chinese demo (make demo-zh): the same shape, written in Chinese for this project.
INTENTS_ZH = {
    "设闹钟": (["明天{}叫我起床", "帮我定一个{}的闹钟", "{}响铃提醒我", "把闹钟设到{}", "我要一个{}的闹钟"],
             ["早上六点", "七点半", "中午十二点"]),
    "计时器": (["开始{}倒计时", "帮我计时{}", "设一个{}的定时器", "{}之后提醒我关火", "煮面要{}，帮我计时"],
             ["十分钟", "一个小时", "九十秒"]),
    "日程安排": (["把{}加到日历里", "周五安排{}", "下周帮我预约{}", "在日程里记上{}", "新建一个叫{}的日程"],
             ["看牙医", "团队聚餐", "瑜伽课"]),
    "发消息": (["给{}发微信说我晚点到", "发条短信给{}", "告诉{}我一会儿回电话", "给{}留言说谢谢", "帮我给{}发个消息"],
            ["妈妈", "老板", "小王"]),
    "打电话": (["给{}打电话", "马上拨打{}的号码", "用免提呼叫{}", "和{}视频通话", "帮我联系一下{}"],
            ["奶奶", "公司前台", "老李"]),
    "智能灯光": (["把{}的灯关掉", "调暗{}的灯光", "让{}亮一点", "打开{}的台灯", "把{}的灯调成蓝色"],
             ["厨房", "卧室", "走廊"]),
    "空调温度": (["把空调调到{}", "屋里弄得{}", "温度设置成{}", "我想让家里保持{}", "暖气开到{}"],
             ["二十一度", "暖和一点", "二十六度"]),
    "购物清单": (["把{}加到购物清单", "家里{}没了", "提醒我买{}", "购物单上写上{}", "从清单里删掉{}"],
             ["牛奶", "鸡蛋", "酱油"]),
    "点外卖": (["帮我点一份{}外卖", "我想吃{}，叫个外卖", "附近哪家店送{}", "下单一份{}送到家", "来一份{}"],
            ["披萨", "寿司", "麻辣烫"]),
    "叫车": (["帮我叫车去{}", "打车到{}", "约一辆去{}的网约车", "去{}打车要多少钱", "我要去{}，叫辆出租车"],
           ["火车站", "机场", "市中心"]),
    "新闻资讯": (["最新的{}新闻有哪些", "给我读一下{}头条", "今天有什么{}消息", "播报一下{}新闻", "{}方面今天发生了什么"],
             ["国际", "科技", "财经"]),
    "体育比分": (["{}昨晚比赛几比几", "{}赢了吗", "查一下{}的比分", "{}最近战绩怎么样", "{}下一场什么时候"],
             ["湖人", "国足", "中超"]),
    "翻译": (["{}用英语怎么说", "把{}翻译成日语", "{}的法语是什么", "用德语说{}", "帮我翻译{}"],
           ["早上好", "谢谢你", "银行在哪里"]),
    "查词典": (["{}是什么意思", "解释一下{}这个词", "查查{}的释义", "{}这个成语怎么用", "{}的近义词有哪些"],
            ["饕餮", "醍醐灌顶", "踌躇"]),
    "播放播客": (["继续播放{}", "放一集{}", "{}更新了吗", "从头播放{}", "下一集{}"],
             ["得到", "故事FM", "科学有意思"]),
    "提醒事项": (["今晚提醒我{}", "别让我忘了{}", "设个提醒：{}", "待会儿记得叫我{}", "明天提醒我{}"],
             ["浇花", "交房租", "吃药"]),
    "运动记录": (["我今天走了多少{}", "帮我记录{}", "看看这周的{}", "我的{}目标是多少", "同步一下今天的{}"],
             ["步数", "消耗的卡路里", "跑步距离"]),
    "电影场次": (["{}什么时候上映", "今晚{}有哪些场次", "哪家影院在放{}", "周末还有{}吗", "买两张{}的票"],
             ["流浪地球", "长安三万里", "新的动画片"]),
    "快递查询": (["我的{}到哪了", "查一下{}的物流", "{}什么时候能到", "{}发货了没有", "看看{}的配送状态"],
             ["快递", "新手机", "网购的书"]),
    "讲笑话": (["讲个{}笑话", "说点{}的", "来一个{}段子", "逗我开心，讲点{}的", "你会讲{}笑话吗"],
            ["好笑的", "冷", "有趣的"]),
}
SUPPORT_ZH = {
    "天气": ["明天北京会下雨吗？", "今晚会降温到几度？"],
    "音乐": ["放一首轻松的爵士乐。", "切到这张专辑的下一首歌。"],
    "烹饪": ["鸡蛋要煮几分钟？", "做蛋糕没有黄油可以用什么代替？"],
    "银行": ["转五百块到我的储蓄账户。", "为什么我的银行卡在商店被拒了？"],
    "旅行": ["帮我找一张三月去东京的便宜机票。", "去加拿大需要办签证吗？"],
}
PREDICT_ZH = [
    "周末天气预报说会下雪吗？",
    "播放我最喜欢的乐队的新专辑。",
    "米饭要焖多少分钟？",
    "我的支票账户还有多少余额？",
    "机场附近今晚有哪些酒店有空房？",
    "把这首歌的音量调大一点。",
    "今天上班要带伞吗？",
    "我想给我姐姐的账户汇一笔钱。",
]
LANGUAGES = {"en": (INTENTS, SUPPORT, PREDICT), "zh": (INTENTS_ZH, SUPPORT_ZH, PREDICT_ZH)}

def intent_lines(intents=INTENTS):
    lines = []
    for intent, (templates, fillers) in intents.items():
        for template in templates:
            for filler in fillers:
                lines.append(f"{template.format(filler)}\t{intent}")
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_dir", default="demo_data")
    parser.add_argument("--language", default="en", choices=sorted(LANGUAGES))
    args = parser.parse_args()
    intents, support, predict = LANGUAGES[args.language]
    os.makedirs(args.output_dir, exist_ok=True)
    outputs = {"intents.tsv": intent_lines(intents),
               "support.tsv": [f"{text}\t{label}" for label, texts in support.items() for text in texts],
               "predict.txt": predict}
    for name, lines in outputs.items():
        with open(os.path.join(args.output_dir, name), "w", encoding="utf-8") as writer:
            writer.write("\n".join(lines) + "\n")
    print(f"wrote {', '.join(outputs)} in {args.output_dir} ({len(intents)} intents, {len(outputs['intents.tsv'])} sentences)")


if __name__ == "__main__":
    main()
