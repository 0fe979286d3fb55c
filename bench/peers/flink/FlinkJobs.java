// The Flink peer of the runtime benchmark (bench/engines.ts starts it, bench/peers.ts builds
// it): Weir's two example jobs on an embedded MiniCluster (one task manager, one slot,
// parallelism 1), configured as Weir runs them (docs/architecture.md, "Benchmarks").
//
//   java -cp 'classes:libs/*' FlinkJobs <filter-enrich|clicks-per-user> <bootstrap> <job name>
//        <input topic> <output topic> <checkpoint directory>
//
// Prints "ready" on stdout once the job is RUNNING, and runs until it is signalled or the job
// fails (exit 1).
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.regex.Pattern;
import org.apache.flink.api.common.JobStatus;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.AggregateFunction;
import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.serialization.SimpleStringSchema;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.windowing.ProcessWindowFunction;
import org.apache.flink.streaming.api.windowing.assigners.TumblingEventTimeWindows;
import org.apache.flink.streaming.api.windowing.windows.TimeWindow;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.producer.ProducerRecord;

public class FlinkJobs {
  static final ObjectMapper JSON = new ObjectMapper();
  static final Pattern BOT = Pattern.compile("bot|crawler|spider", Pattern.CASE_INSENSITIVE);
  /** Weir's TaskReader fetches at most 256 KB at a time. */
  static final String FETCH_BYTES = "262144";

  public static void main(String[] args) throws Exception {
    if (args.length != 6) {
      System.err.println("usage: FlinkJobs <job> <bootstrap> <name> <in> <out> <checkpoint dir>");
      System.exit(2);
    }
    String job = args[0];
    String bootstrap = args[1];
    String name = args[2];
    Configuration conf =
        Configuration.fromMap(
            Map.ofEntries(
                Map.entry("parallelism.default", "1"),
                Map.entry("taskmanager.numberOfTaskSlots", "1"),
                // Weir's guarantee and interval; state on the heap (as Weir's), checkpointed
                // whole each time to the local file system (Weir uploads its state to S3).
                Map.entry("execution.checkpointing.interval", "1 s"),
                Map.entry("execution.checkpointing.mode", "EXACTLY_ONCE"),
                Map.entry("state.backend.type", "hashmap"),
                Map.entry("execution.checkpointing.storage", "filesystem"),
                Map.entry("execution.checkpointing.dir", "file://" + args[5]),
                Map.entry("execution.checkpointing.incremental", "false"),
                Map.entry("pipeline.object-reuse", "true"),
                // Loopback only.
                Map.entry("jobmanager.rpc.address", "127.0.0.1"),
                Map.entry("taskmanager.host", "127.0.0.1"),
                Map.entry("rest.bind-address", "127.0.0.1"),
                Map.entry("rest.address", "127.0.0.1")));
    StreamExecutionEnvironment env = StreamExecutionEnvironment.createLocalEnvironment(conf);

    KafkaSource<String> source =
        KafkaSource.<String>builder()
            .setBootstrapServers(bootstrap)
            .setTopics(args[3])
            .setGroupId(name)
            .setStartingOffsets(OffsetsInitializer.earliest())
            .setValueOnlyDeserializer(new SimpleStringSchema())
            .setProperty("isolation.level", "read_committed")
            .setProperty("fetch.max.bytes", FETCH_BYTES)
            .setProperty("max.partition.fetch.bytes", FETCH_BYTES)
            .build();
    KafkaSink<Tuple2<String, String>> sink =
        KafkaSink.<Tuple2<String, String>>builder()
            .setBootstrapServers(bootstrap)
            .setRecordSerializer(new KeyedJson(args[4]))
            .setDeliveryGuarantee(DeliveryGuarantee.EXACTLY_ONCE)
            .setTransactionalIdPrefix(name)
            // Weir's transaction timeout (the broker refuses Flink's default of an hour).
            .setProperty("transaction.timeout.ms", "60000")
            .build();

    DataStream<String> input = env.fromSource(source, WatermarkStrategy.noWatermarks(), "input");
    switch (job) {
      case "filter-enrich" -> input.flatMap(new Enrich()).name("filter-enrich").sinkTo(sink);
      case "clicks-per-user" ->
          input
              .map(new ParseClick())
              .assignTimestampsAndWatermarks(
                  WatermarkStrategy.<Click>forBoundedOutOfOrderness(Duration.ofSeconds(5))
                      .withTimestampAssigner((click, previous) -> click.ts)
                      .withIdleness(Duration.ofSeconds(30)))
              .keyBy(click -> click.user)
              .window(TumblingEventTimeWindows.of(Duration.ofSeconds(60)))
              .allowedLateness(Duration.ofSeconds(10))
              .aggregate(new Count(), new WindowJson())
              .sinkTo(sink);
      default -> {
        System.err.println("no job named " + job);
        System.exit(2);
      }
    }

    JobClient client = env.executeAsync(name);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> client.cancel()));
    long deadline = System.currentTimeMillis() + 120_000;
    while (client.getJobStatus().get() != JobStatus.RUNNING) {
      if (client.getJobStatus().get().isGloballyTerminalState()
          || System.currentTimeMillis() > deadline) {
        System.err.println("the job did not start: " + client.getJobStatus().get());
        System.exit(1);
      }
      Thread.sleep(10);
    }
    System.out.println("ready");
    System.out.flush();
    try {
      client.getJobExecutionResult().get();
    } catch (Exception e) {
      e.printStackTrace();
      System.exit(1);
    }
  }

  /** Drops malformed or bot events, adds `domain` (the URL's host): Weir's filter-enrich. */
  static class Enrich implements FlatMapFunction<String, Tuple2<String, String>> {
    @Override
    public void flatMap(String value, Collector<Tuple2<String, String>> out) throws Exception {
      JsonNode parsed;
      try {
        parsed = JSON.readTree(value);
      } catch (Exception e) {
        return;
      }
      if (!(parsed instanceof ObjectNode event)) return;
      JsonNode user = event.get("user");
      JsonNode url = event.get("url");
      if (user == null || !user.isTextual() || user.asText().isEmpty()) return;
      if (url == null || !url.isTextual()) return;
      String host = host(url.asText());
      if (host == null) return;
      JsonNode agent = event.get("agent");
      if (agent != null && agent.isTextual() && BOT.matcher(agent.asText()).find()) return;
      event.put("domain", host);
      out.collect(Tuple2.of(user.asText(), JSON.writeValueAsString(event)));
    }
  }

  /** The host of an absolute URL, or null when it is none (Weir: URL.canParse, hostname). */
  static String host(String url) {
    try {
      URI uri = new URI(url);
      return uri.isAbsolute() && uri.getHost() != null ? uri.getHost() : null;
    } catch (Exception e) {
      return null;
    }
  }

  /** A click `{user, url, ts}` (a POJO: Flink's own serializer between keyBy's two sides). */
  public static class Click {
    public String user;
    public String url;
    public long ts;

    public Click() {}
  }

  static class ParseClick implements MapFunction<String, Click> {
    @Override
    public Click map(String value) throws Exception {
      JsonNode parsed = JSON.readTree(value);
      Click click = new Click();
      click.user = parsed.get("user").asText();
      click.url = parsed.get("url").asText();
      click.ts = parsed.get("ts").asLong();
      return click;
    }
  }

  static class Count implements AggregateFunction<Click, Long, Long> {
    @Override
    public Long createAccumulator() {
      return 0L;
    }

    @Override
    public Long add(Click click, Long count) {
      return count + 1;
    }

    @Override
    public Long getResult(Long count) {
      return count;
    }

    @Override
    public Long merge(Long a, Long b) {
      return a + b;
    }
  }

  /** A window's count as Weir's output `{user, start, end, clicks}`, keyed by user. */
  static class WindowJson
      extends ProcessWindowFunction<Long, Tuple2<String, String>, String, TimeWindow> {
    @Override
    public void process(
        String user, Context context, Iterable<Long> counts, Collector<Tuple2<String, String>> out)
        throws Exception {
      ObjectNode json = JSON.createObjectNode();
      json.put("user", user);
      json.put("start", context.window().getStart());
      json.put("end", context.window().getEnd());
      json.put("clicks", counts.iterator().next());
      out.collect(Tuple2.of(user, JSON.writeValueAsString(json)));
    }
  }

  /** (key, JSON) as a record of the output topic, both UTF-8. */
  static class KeyedJson implements KafkaRecordSerializationSchema<Tuple2<String, String>> {
    private final String topic;

    KeyedJson(String topic) {
      this.topic = topic;
    }

    @Override
    public ProducerRecord<byte[], byte[]> serialize(
        Tuple2<String, String> element, KafkaSinkContext context, Long timestamp) {
      return new ProducerRecord<>(
          topic,
          null,
          timestamp,
          element.f0.getBytes(StandardCharsets.UTF_8),
          element.f1.getBytes(StandardCharsets.UTF_8));
    }
  }
}
